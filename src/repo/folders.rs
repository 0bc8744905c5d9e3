//! Folder rows: look-ups, trees and the structural writes (create, rename,
//! move, the first step of a delete).
//!
//! Structural writes lock the tenant's row first (PostgreSQL; SQLite has a
//! single writer anyway), so two concurrent moves can never build a cycle
//! out of two checks that each passed alone.

use std::collections::BTreeMap;

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Statement,
    sea_query::{Expr, Query},
};

use super::{
    Repo, WriteTx,
    entity::{folder, media, media_binding},
    to_i64,
};
use crate::{
    domain::{
        Folder, FolderId, FolderName, FolderPath, MAX_FOLDER_DEPTH, Principal, TOMBSTONE, TenantId,
        now_micros, tombstone_name,
    },
    error::{Error, Reason, Resource, Result},
};

impl Repo {
    /// A live folder of the tenant.
    pub async fn folder(&self, tenant: TenantId, id: FolderId) -> Result<Option<Folder>> {
        live_folder(&self.read, tenant, id).await
    }

    /// A live folder of the tenant, by path.
    pub async fn folder_by_path(
        &self,
        tenant: TenantId,
        path: &FolderPath,
    ) -> Result<Option<Folder>> {
        Ok(live(tenant)
            .filter(folder::Column::Path.eq(path.as_str()))
            .one(&self.read)
            .await?
            .map(to_folder))
    }

    /// The live folders directly in `parent`, by name, after the name
    /// `after` (exclusive); at most `limit`. The sibling-name index
    /// `(tenant_id, parent_id, name)` gives them in this order.
    pub async fn child_folders(
        &self,
        tenant: TenantId,
        parent: FolderId,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<Folder>> {
        let mut q = live(tenant).filter(folder::Column::ParentId.eq(parent.0));
        if let Some(after) = after {
            q = q.filter(folder::Column::Name.gt(after));
        }
        Ok(q.order_by_asc(folder::Column::Name)
            .limit(limit)
            .all(&self.read)
            .await?
            .into_iter()
            .map(to_folder)
            .collect())
    }

    /// `top` and the live folders below it down to `levels` levels, in path
    /// order; at most `limit` rows.
    pub async fn folder_tree(
        &self,
        tenant: TenantId,
        top: &Folder,
        levels: u32,
        limit: u64,
    ) -> Result<Vec<Folder>> {
        Ok(tree(tenant, top, levels, limit)
            .all(&self.read)
            .await?
            .into_iter()
            .map(to_folder)
            .collect())
    }

    /// The database's plan for [`Repo::folder_tree`].
    pub async fn explain_folder_tree(
        &self,
        tenant: TenantId,
        top: &Folder,
        levels: u32,
        limit: u64,
    ) -> Result<Vec<String>> {
        let backend = self.read.get_database_backend();
        self.explain(tree(tenant, top, levels, limit).build(backend))
            .await
    }

    /// Top folders of subtrees whose deletion started but did not finish
    /// (the server stopped meanwhile).
    pub async fn pending_folder_deletions(&self) -> Result<Vec<(TenantId, FolderId)>> {
        Ok(folder::Entity::find()
            .filter(folder::Column::Deleting.eq(true))
            .filter(folder::Column::Name.starts_with(TOMBSTONE.to_string()))
            .all(&self.read)
            .await?
            .into_iter()
            .map(|f| (TenantId(f.tenant_id), FolderId(f.id)))
            .collect())
    }
}

impl WriteTx {
    /// Serializes the tenant's structural changes (see the module doc).
    pub async fn lock_tenant(&mut self, tenant: TenantId) -> Result<()> {
        if self.tx.get_database_backend() == DatabaseBackend::Postgres {
            self.tx
                .execute(Statement::from_sql_and_values(
                    DatabaseBackend::Postgres,
                    "SELECT id FROM tenants WHERE id = $1 FOR UPDATE",
                    [tenant.0.into()],
                ))
                .await?;
        }
        Ok(())
    }

    /// A live folder, read inside the transaction.
    pub async fn folder(&mut self, tenant: TenantId, id: FolderId) -> Result<Folder> {
        live_folder(&self.tx, tenant, id)
            .await?
            .ok_or_else(|| Error::not_found(Resource::Folder, id.to_string()))
    }

    /// Fails with ALREADY_EXISTS if `parent` has a live child `name`.
    async fn check_free(
        &mut self,
        tenant: TenantId,
        parent: &Folder,
        name: &FolderName,
    ) -> Result<()> {
        let taken = live(tenant)
            .filter(folder::Column::ParentId.eq(parent.id.0))
            .filter(folder::Column::Name.eq(name.as_str()))
            .one(&self.tx)
            .await?;
        match taken {
            None => Ok(()),
            Some(f) => Err(Error::AlreadyExists {
                kind: Resource::Folder,
                name: f.path.clone(),
                message: format!(
                    "{} already has a folder named {:?} (id {}); choose another name",
                    parent.path.as_str(),
                    name.as_str(),
                    f.id
                ),
            }),
        }
    }

    /// Creates `name` under `parent`, public or not.
    pub async fn create_folder(
        &mut self,
        by: &Principal,
        parent: FolderId,
        name: &FolderName,
        public: bool,
    ) -> Result<Folder> {
        let tenant = by.tenant;
        self.lock_tenant(tenant).await?;
        let parent = self.folder(tenant, parent).await?;
        if parent.depth >= MAX_FOLDER_DEPTH {
            return Err(too_deep(&parent.path));
        }
        self.check_free(tenant, &parent, name).await?;
        let now = now_micros();
        let f = Folder {
            id: FolderId::new(),
            parent: Some(parent.id),
            name: name.as_str().to_string(),
            path: parent.path.child(name),
            depth: parent.depth + 1,
            media_count: 0,
            size_bytes: 0,
            created_at: now,
            updated_at: now,
            created_by: by.name.clone(),
            updated_by: by.name.clone(),
            created_role: by.role.clone(),
            public,
        };
        folder::Entity::insert(folder::ActiveModel {
            id: Set(f.id.0),
            tenant_id: Set(tenant.0),
            parent_id: Set(Some(parent.id.0)),
            name: Set(f.name.clone()),
            path: Set(f.path.as_str().to_string()),
            created_at: Set(now),
            updated_at: Set(now),
            depth: Set(to_i32(f.depth)),
            media_count: Set(0),
            size_bytes: Set(0),
            deleting: Set(false),
            created_by: Set(f.created_by.clone()),
            updated_by: Set(f.updated_by.clone()),
            created_role: Set(f.created_role.clone()),
            public: Set(public),
        })
        .exec_without_returning(&self.tx)
        .await?;
        Ok(f)
    }

    /// Makes a folder (the root too) public or private: whether every
    /// media below it can be read without a key.
    pub async fn set_folder_public(
        &mut self,
        by: &Principal,
        id: FolderId,
        public: bool,
    ) -> Result<Folder> {
        let tenant = by.tenant;
        let mut f = self.folder(tenant, id).await?;
        if f.public == public {
            return Ok(f);
        }
        let now = now_micros();
        folder::Entity::update_many()
            .col_expr(folder::Column::Public, Expr::value(public))
            .col_expr(folder::Column::UpdatedAt, Expr::value(now))
            .col_expr(folder::Column::UpdatedBy, Expr::value(by.name.as_str()))
            .filter(folder::Column::TenantId.eq(tenant.0))
            .filter(folder::Column::Id.eq(id.0))
            .exec(&self.tx)
            .await?;
        f.public = public;
        f.updated_at = now;
        f.updated_by.clone_from(&by.name);
        Ok(f)
    }

    /// Renames a folder (not the root); its subtree's paths follow.
    pub async fn rename_folder(
        &mut self,
        by: &Principal,
        id: FolderId,
        name: &FolderName,
    ) -> Result<Folder> {
        let tenant = by.tenant;
        self.lock_tenant(tenant).await?;
        let f = self.folder(tenant, id).await?;
        let parent = self.parent_of(tenant, &f, "renamed").await?;
        if f.name == name.as_str() {
            return Ok(f);
        }
        self.check_free(tenant, &parent, name).await?;
        self.relocate(by, f, &parent, name.as_str(), false).await
    }

    /// Moves a folder (not the root) under `new_parent`, which must not lie
    /// in its own subtree.
    pub async fn move_folder(
        &mut self,
        by: &Principal,
        id: FolderId,
        new_parent: FolderId,
    ) -> Result<Folder> {
        let tenant = by.tenant;
        self.lock_tenant(tenant).await?;
        let f = self.folder(tenant, id).await?;
        self.parent_of(tenant, &f, "moved").await?;
        let parent = self.folder(tenant, new_parent).await?;
        if f.path.contains(&parent.path) {
            return Err(Error::precondition(
                Reason::FolderCycle,
                format!(
                    "cannot move {} into {}: a folder cannot move into itself or one of its subfolders",
                    f.path.as_str(),
                    parent.path.as_str()
                ),
            ));
        }
        if f.parent == Some(parent.id) {
            return Ok(f);
        }
        let name = FolderName::parse("name", &f.name)?;
        self.check_free(tenant, &parent, &name).await?;
        // The deepest folder of the subtree must stay within the limit.
        let deepest = live(tenant)
            .filter(in_subtree(&f.path))
            .order_by_desc(folder::Column::Depth)
            .one(&self.tx)
            .await?
            .map_or(f.depth, |d| u32::try_from(d.depth).unwrap_or(0));
        if deepest - f.depth + parent.depth + 1 > MAX_FOLDER_DEPTH {
            return Err(too_deep(&parent.path));
        }
        let name = f.name.clone();
        self.relocate(by, f, &parent, &name, true).await
    }

    /// The parent of a folder that is about to change; the root has none
    /// and refuses.
    async fn parent_of(&mut self, tenant: TenantId, f: &Folder, verb: &str) -> Result<Folder> {
        match f.parent {
            Some(p) => self.folder(tenant, p).await,
            None => Err(Error::precondition(
                Reason::RootFolder,
                format!("the root folder cannot be {verb}"),
            )),
        }
    }

    /// Gives `f` a new parent and name, rewriting its subtree's paths and
    /// depths in one statement.
    async fn relocate(
        &mut self,
        by: &Principal,
        mut f: Folder,
        parent: &Folder,
        name: &str,
        moved: bool,
    ) -> Result<Folder> {
        let new_path = format!("{}{name}/", parent.path.as_str());
        let new_depth = parent.depth + 1;
        let now = now_micros();
        self.rewrite_subtree(
            by.tenant,
            &f.path,
            &new_path,
            i64::from(new_depth) - i64::from(f.depth),
        )
        .await?;
        folder::Entity::update_many()
            .col_expr(folder::Column::Name, name.into())
            .col_expr(folder::Column::ParentId, parent.id.0.into())
            .col_expr(folder::Column::UpdatedAt, now.into())
            .col_expr(folder::Column::UpdatedBy, by.name.as_str().into())
            .filter(folder::Column::Id.eq(f.id.0))
            .exec(&self.tx)
            .await?;
        f.name = name.to_string();
        f.path = FolderPath::from_stored(new_path);
        f.depth = new_depth;
        f.updated_at = now;
        f.updated_by = by.name.clone();
        if moved {
            f.parent = Some(parent.id);
        }
        Ok(f)
    }

    /// Replaces the `old` path prefix of a subtree by `new`, shifting the
    /// depths by `depth_delta`. SUBSTR counts characters on both engines.
    async fn rewrite_subtree(
        &mut self,
        tenant: TenantId,
        old: &FolderPath,
        new: &str,
        depth_delta: i64,
    ) -> Result<u64> {
        let (low, high) = old.subtree_range();
        let backend = self.tx.get_database_backend();
        let res = self
            .tx
            .execute(Statement::from_sql_and_values(
                backend,
                "UPDATE folders SET path = CAST($1 AS TEXT) || SUBSTR(path, CAST($2 AS INTEGER)), \
                 depth = depth + CAST($3 AS INTEGER) \
                 WHERE tenant_id = $4 AND path >= $5 AND path < $6",
                [
                    new.into(),
                    to_i64(old.as_str().chars().count() as u64 + 1).into(),
                    depth_delta.into(),
                    tenant.0.into(),
                    low.into(),
                    high.into(),
                ],
            ))
            .await?;
        Ok(res.rows_affected())
    }

    /// First step of a delete: takes the folder (not the root) and its
    /// subtree out of the namespace at once, under a tombstone path, and
    /// marks them as deleting. Returns the tombstone path, whose subtree
    /// the caller then empties in batches, and the number of folders.
    /// Unless `force`, fails with FAILED_PRECONDITION if a media in the
    /// subtree is bound.
    pub async fn begin_folder_deletion(
        &mut self,
        tenant: TenantId,
        id: FolderId,
        force: bool,
    ) -> Result<(FolderPath, u64)> {
        self.lock_tenant(tenant).await?;
        let f = self.folder(tenant, id).await?;
        self.parent_of(tenant, &f, "deleted").await?;
        if !force {
            let bound = media_binding::Entity::find()
                .filter(media_binding::Column::TenantId.eq(tenant.0))
                .filter(
                    media_binding::Column::MediaId.in_subquery(
                        Query::select()
                            .column((media::Entity, media::Column::Id))
                            .from(media::Entity)
                            .inner_join(
                                folder::Entity,
                                Expr::col((folder::Entity, folder::Column::Id))
                                    .equals((media::Entity, media::Column::FolderId)),
                            )
                            .and_where(folder::Column::TenantId.eq(tenant.0))
                            .cond_where(in_subtree(&f.path))
                            .to_owned(),
                    ),
                )
                .limit(10)
                .all(&self.tx)
                .await?;
            if !bound.is_empty() {
                return Err(super::media_rows::bound_error(&bound));
            }
        }
        let tomb = FolderPath::tombstone(f.id);
        let count = self
            .rewrite_subtree(tenant, &f.path, tomb.as_str(), 0)
            .await?;
        folder::Entity::update_many()
            .col_expr(folder::Column::Deleting, true.into())
            .filter(folder::Column::TenantId.eq(tenant.0))
            .filter(in_subtree(&tomb))
            .exec(&self.tx)
            .await?;
        folder::Entity::update_many()
            .col_expr(folder::Column::Name, tombstone_name(f.id).into())
            .filter(folder::Column::Id.eq(f.id.0))
            .exec(&self.tx)
            .await?;
        Ok((tomb, count))
    }

    /// Last step of a delete: removes the (by now empty) folders of a
    /// tombstoned subtree. Returns how many went.
    pub async fn remove_folders(&mut self, tenant: TenantId, tomb: &FolderPath) -> Result<u64> {
        let res = folder::Entity::delete_many()
            .filter(folder::Column::TenantId.eq(tenant.0))
            .filter(in_subtree(tomb))
            .exec(&self.tx)
            .await?;
        Ok(res.rows_affected)
    }

    /// Adds `count` media of `bytes` bytes in total to a live folder's
    /// counters (negative to remove). Fails with NOT_FOUND when the folder
    /// is gone or being deleted, which is how an upload or a move into a
    /// folder deleted meanwhile is refused.
    pub async fn count_in_folder(
        &mut self,
        tenant: TenantId,
        id: FolderId,
        count: i64,
        bytes: i64,
    ) -> Result<()> {
        let res = folder::Entity::update_many()
            .col_expr(
                folder::Column::MediaCount,
                Expr::col(folder::Column::MediaCount).add(count),
            )
            .col_expr(
                folder::Column::SizeBytes,
                Expr::col(folder::Column::SizeBytes).add(bytes),
            )
            .filter(folder::Column::TenantId.eq(tenant.0))
            .filter(folder::Column::Id.eq(id.0))
            .filter(folder::Column::Deleting.eq(false))
            .exec(&self.tx)
            .await?;
        if res.rows_affected == 0 && count > 0 {
            return Err(Error::not_found(Resource::Folder, id.to_string()));
        }
        Ok(())
    }
}

/// Changes to folders' media counts and sizes within one transaction,
/// summed per folder so that each folder is updated once, in folder order.
#[derive(Debug, Default)]
pub(super) struct FolderCounts(BTreeMap<(TenantId, FolderId), (i64, i64)>);

impl FolderCounts {
    /// Adds `count` media of `bytes` bytes (negative to remove) to `folder`.
    pub(super) fn add(&mut self, tenant: TenantId, folder: FolderId, count: i64, bytes: i64) {
        let c = self.0.entry((tenant, folder)).or_default();
        c.0 += count;
        c.1 += bytes;
    }
}

impl WriteTx {
    /// Writes the summed changes (see [`WriteTx::count_in_folder`]).
    pub(super) async fn apply_counts(&mut self, counts: FolderCounts) -> Result<()> {
        for ((tenant, folder), (count, bytes)) in counts.0 {
            self.count_in_folder(tenant, folder, count, bytes).await?;
        }
        Ok(())
    }
}

/// `top` and its live subtree, `levels` deep, in path order.
fn tree(
    tenant: TenantId,
    top: &Folder,
    levels: u32,
    limit: u64,
) -> sea_orm::Select<folder::Entity> {
    live(tenant)
        .filter(in_subtree(&top.path))
        .filter(folder::Column::Depth.lte(to_i32(top.depth + levels)))
        .order_by_asc(folder::Column::Path)
        .limit(limit)
}

/// One live folder of the tenant, through `conn`.
async fn live_folder(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    id: FolderId,
) -> Result<Option<Folder>> {
    Ok(live(tenant)
        .filter(folder::Column::Id.eq(id.0))
        .one(conn)
        .await?
        .map(to_folder))
}

/// Folders at `path` and below it: one byte range of paths (see
/// [`FolderPath::subtree_range`]).
pub(super) fn in_subtree(path: &FolderPath) -> Condition {
    let (low, high) = path.subtree_range();
    Condition::all()
        .add(folder::Column::Path.gte(low))
        .add(folder::Column::Path.lt(high))
}

/// The tenant's live folders.
fn live(tenant: TenantId) -> sea_orm::Select<folder::Entity> {
    folder::Entity::find()
        .filter(folder::Column::TenantId.eq(tenant.0))
        .filter(folder::Column::Deleting.eq(false))
}

fn too_deep(parent: &FolderPath) -> Error {
    Error::precondition(
        Reason::FolderTooDeep,
        format!(
            "folders nest at most {MAX_FOLDER_DEPTH} levels deep; {} cannot take more levels below it",
            parent.as_str()
        ),
    )
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn to_folder(r: folder::Model) -> Folder {
    Folder {
        id: FolderId(r.id),
        parent: r.parent_id.map(FolderId),
        name: r.name,
        path: FolderPath::from_stored(r.path),
        depth: u32::try_from(r.depth).unwrap_or(0),
        media_count: u64::try_from(r.media_count).unwrap_or(0),
        size_bytes: u64::try_from(r.size_bytes).unwrap_or(0),
        created_at: r.created_at,
        updated_at: r.updated_at,
        created_by: r.created_by,
        updated_by: r.updated_by,
        created_role: r.created_role,
        public: r.public,
    }
}
