//! Folder operations, and the batched deletion of a folder's content.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::Library;
use crate::{
    domain::{
        Folder, FolderDeletion, FolderId, FolderName, FolderPath, Job, MAX_FOLDER_DEPTH, NewJob,
        Principal, TenantId,
    },
    error::{Error, Reason, Resource, Result},
};

/// The job kind that deletes a folder's media after the folder left the
/// namespace.
pub const DELETE_FOLDER: &str = "delete_folder";

/// Most folders one tree response holds; a larger subtree must be asked
/// for level by level (`max_depth`) or branch by branch.
pub const MAX_TREE_NODES: u64 = 20_000;
/// Media deleted per transaction while a folder's content goes: small
/// enough that other writers wait at most a few milliseconds, large enough
/// that a tree of 100,000 media takes a few hundred transactions.
const DELETE_BATCH: u64 = 500;

/// How long a tenant's cached tree serves as it is while nothing in this
/// process changed it: the bound on how stale counts can be after writes
/// through other replicas.
const TREE_TTL: Duration = Duration::from_secs(1);
/// How long past `TREE_TTL` an entry still serves while a background read
/// replaces it: no request waits for the tens of milliseconds a read of
/// 10,000 folders takes, unless the tree changed here or went unused this
/// long.
const TREE_STALE_SERVE: Duration = Duration::from_secs(10);

/// Folder trees by tenant. Reading 10,000 folder rows costs tens of
/// milliseconds (mostly per-row decoding); a tree served from memory costs
/// well under one. Any write in this process that changes a tenant's
/// folders or their counts drops its entry and bumps its generation, so
/// that a read started before the change never stores its older tree.
#[derive(Debug, Default)]
pub(super) struct TreeCache(Mutex<HashMap<TenantId, CachedTree>>);

#[derive(Debug, Default)]
struct CachedTree {
    /// The tree and when its read started; `None` after a change.
    tree: Option<(Instant, Arc<Vec<Folder>>)>,
    /// Changes made here so far.
    generation: u64,
    /// A background read is replacing a stale tree.
    refreshing: bool,
}

/// What the cache holds for a tenant.
enum Cached {
    /// A tree to serve; `refresh` asks the caller to read a new one in the
    /// background, started at this generation.
    Tree {
        tree: Arc<Vec<Folder>>,
        refresh: Option<u64>,
    },
    /// Nothing to serve; a read started at this generation may be stored.
    Miss(u64),
}

impl TreeCache {
    fn get(&self, tenant: TenantId) -> Cached {
        let Ok(mut map) = self.0.lock() else {
            return Cached::Miss(u64::MAX);
        };
        let entry = map.entry(tenant).or_default();
        match &entry.tree {
            Some((at, tree)) if at.elapsed() < TREE_TTL => Cached::Tree {
                tree: Arc::clone(tree),
                refresh: None,
            },
            Some((at, tree)) if at.elapsed() < TREE_TTL + TREE_STALE_SERVE => {
                let refresh = (!entry.refreshing).then_some(entry.generation);
                entry.refreshing = true;
                Cached::Tree {
                    tree: Arc::clone(tree),
                    refresh,
                }
            }
            _ => Cached::Miss(entry.generation),
        }
    }

    /// Stores a tree read since `at`, unless the tenant's folders changed
    /// here after the read started (at `generation`).
    fn put(&self, tenant: TenantId, generation: u64, at: Instant, tree: Arc<Vec<Folder>>) {
        if let Ok(mut map) = self.0.lock() {
            let entry = map.entry(tenant).or_default();
            if entry.generation == generation {
                entry.tree = Some((at, tree));
                entry.refreshing = false;
            }
        }
    }

    /// A background read failed: the next request may start another.
    fn refresh_failed(&self, tenant: TenantId) {
        if let Ok(mut map) = self.0.lock()
            && let Some(entry) = map.get_mut(&tenant)
        {
            entry.refreshing = false;
        }
    }

    fn forget(&self, tenant: TenantId) {
        if let Ok(mut map) = self.0.lock() {
            let entry = map.entry(tenant).or_default();
            entry.tree = None;
            entry.refreshing = false;
            entry.generation += 1;
        }
    }
}

impl Library {
    /// Drops the tenant's cached tree after a change to its folders or
    /// their counts, and what media URLs resolved to (a folder's
    /// publicity, a deleted or moved media may change their answers).
    pub(super) fn folders_changed(&self, tenant: TenantId) {
        self.inner.trees.forget(tenant);
        self.inner.served.changed();
    }

    /// The tenant's whole live tree in path order, from the cache when it
    /// may serve (a stale one is replaced in the background); `None` when
    /// the tenant has more folders than one tree response may hold (such
    /// trees are read per request).
    async fn whole_tree(&self, tenant: TenantId) -> Result<Option<Arc<Vec<Folder>>>> {
        match self.inner.trees.get(tenant) {
            Cached::Tree { tree, refresh } => {
                if let Some(generation) = refresh {
                    let this = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = this.read_whole_tree(tenant, generation).await {
                            this.inner.trees.refresh_failed(tenant);
                            tracing::warn!(tenant = %tenant.0, error = %e, "refreshing a cached folder tree failed");
                        }
                    });
                }
                Ok(Some(tree))
            }
            Cached::Miss(generation) => self.read_whole_tree(tenant, generation).await,
        }
    }

    /// Reads the tenant's whole tree and caches it (see [`TreeCache::put`]).
    async fn read_whole_tree(
        &self,
        tenant: TenantId,
        generation: u64,
    ) -> Result<Option<Arc<Vec<Folder>>>> {
        // Taken before the read: a change through another replica that
        // lands during it makes the entry expire no later than it should.
        let at = Instant::now();
        let root = self.root(tenant).await?;
        let all = self
            .inner
            .repo
            .folder_tree(tenant, &root, MAX_FOLDER_DEPTH, MAX_TREE_NODES + 1)
            .await?;
        if all.len() as u64 > MAX_TREE_NODES {
            self.inner.trees.refresh_failed(tenant);
            return Ok(None);
        }
        let all = Arc::new(all);
        self.inner
            .trees
            .put(tenant, generation, at, Arc::clone(&all));
        Ok(Some(all))
    }

    /// The tenant's root folder, with its counters.
    pub async fn root(&self, tenant: TenantId) -> Result<Folder> {
        let id = self.root_folder(tenant).await?;
        self.folder(tenant, id).await
    }

    /// One live folder.
    pub async fn folder(&self, tenant: TenantId, id: FolderId) -> Result<Folder> {
        self.inner
            .repo
            .folder(tenant, id)
            .await?
            .ok_or_else(|| Error::not_found(Resource::Folder, id.to_string()))
    }

    /// The folder at `path`.
    pub async fn folder_at(&self, tenant: TenantId, path: &FolderPath) -> Result<Folder> {
        self.inner
            .repo
            .folder_by_path(tenant, path)
            .await?
            .ok_or_else(|| Error::not_found(Resource::Folder, path.as_str()))
    }

    /// The folders directly in `parent` (the root when `None`), by name,
    /// after the name `after`; at most `limit`. NOT_FOUND when the parent
    /// is not a live folder of the tenant.
    pub async fn child_folders(
        &self,
        tenant: TenantId,
        parent: Option<FolderId>,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<Folder>> {
        let parent = match parent {
            Some(id) => self.folder(tenant, id).await?.id,
            None => self.root_folder(tenant).await?,
        };
        self.inner
            .repo
            .child_folders(tenant, parent, after, limit)
            .await
    }

    /// `id`, or the tenant's root when `None`.
    pub async fn folder_or_root(&self, tenant: TenantId, id: Option<FolderId>) -> Result<FolderId> {
        match id {
            Some(id) => Ok(id),
            None => self.root_folder(tenant).await,
        }
    }

    /// A folder and the folders below it, `levels` deep (0: all, up to the
    /// maximum depth), in path order. The whole tree of a tenant is the
    /// cached one itself, shared, not a copy: callers may cache what they
    /// make of it by its address ([`Arc::ptr_eq`]).
    pub async fn folder_tree(
        &self,
        tenant: TenantId,
        top: Option<FolderId>,
        levels: u32,
    ) -> Result<Arc<Vec<Folder>>> {
        let top = self.folder_or_root(tenant, top).await?;
        let levels = if levels == 0 {
            MAX_FOLDER_DEPTH
        } else {
            levels
        };
        let cached = self.whole_tree(tenant).await?;
        if let Some(all) = &cached
            && all.first().is_some_and(|root| root.id == top)
            && levels >= MAX_FOLDER_DEPTH
        {
            return Ok(Arc::clone(all));
        }
        let from_cache = cached.as_ref().and_then(|all| {
            let i = all.iter().position(|f| f.id == top)?;
            let base = &all[i];
            let deepest = base.depth + levels;
            Some(
                all[i..]
                    .iter()
                    .take_while(|f| base.path.contains(&f.path))
                    .filter(|f| f.depth <= deepest)
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        });
        let (top, nodes) = match from_cache {
            Some(nodes) => (nodes[0].clone(), nodes),
            // Not cached, or created through another replica since.
            None => {
                let top = self.folder(tenant, top).await?;
                let nodes = self
                    .inner
                    .repo
                    .folder_tree(tenant, &top, levels, MAX_TREE_NODES + 1)
                    .await?;
                (top, nodes)
            }
        };
        if nodes.len() as u64 > MAX_TREE_NODES {
            return Err(Error::ResourceExhausted {
                reason: Reason::TreeTooLarge,
                subject: "folder_tree_nodes".into(),
                message: format!(
                    "{} holds more than {MAX_TREE_NODES} folders within {levels} levels; \
                     ask for fewer levels (max_depth) or for a subfolder",
                    top.path.as_str()
                ),
            });
        }
        Ok(Arc::new(nodes))
    }

    /// Creates a folder, public (every media below it readable without a
    /// key) or not.
    pub async fn create_folder(
        &self,
        by: &Principal,
        parent: Option<FolderId>,
        name: &FolderName,
        public: bool,
    ) -> Result<Folder> {
        let tenant = by.tenant;
        let parent = self.folder_or_root(tenant, parent).await?;
        let mut tx = self.inner.repo.begin().await?;
        let f = tx.create_folder(by, parent, name, public).await?;
        tx.commit().await?;
        self.folders_changed(tenant);
        Ok(f)
    }

    /// Makes a folder public or private; `None` for the root.
    pub async fn set_folder_public(
        &self,
        by: &Principal,
        id: Option<FolderId>,
        public: bool,
    ) -> Result<Folder> {
        let id = self.folder_or_root(by.tenant, id).await?;
        let mut tx = self.inner.repo.begin().await?;
        let f = tx.set_folder_public(by, id, public).await?;
        tx.commit().await?;
        self.folders_changed(by.tenant);
        Ok(f)
    }

    /// Renames a folder.
    pub async fn rename_folder(
        &self,
        by: &Principal,
        id: FolderId,
        name: &FolderName,
    ) -> Result<Folder> {
        let mut tx = self.inner.repo.begin().await?;
        let f = tx.rename_folder(by, id, name).await?;
        tx.commit().await?;
        self.folders_changed(by.tenant);
        Ok(f)
    }

    /// Moves a folder under another.
    pub async fn move_folder(
        &self,
        by: &Principal,
        id: FolderId,
        new_parent: Option<FolderId>,
    ) -> Result<Folder> {
        let new_parent = self.folder_or_root(by.tenant, new_parent).await?;
        let mut tx = self.inner.repo.begin().await?;
        let f = tx.move_folder(by, id, new_parent).await?;
        tx.commit().await?;
        self.folders_changed(by.tenant);
        Ok(f)
    }

    /// Deletes a folder and everything in it. The subtree leaves the
    /// namespace in one short transaction; its media then go in batches,
    /// in a task of their own, so a client that gives up waiting does not
    /// stop the deletion halfway (a restart resumes it, see `recover`).
    pub async fn delete_folder(
        &self,
        tenant: TenantId,
        id: FolderId,
        force: bool,
    ) -> Result<FolderDeletion> {
        let mut tx = self.inner.repo.begin().await?;
        let (tomb, folders) = tx.begin_folder_deletion(tenant, id, force).await?;
        tx.commit().await?;
        self.folders_changed(tenant);
        let this = self.clone();
        let (media, blobs) = tokio::spawn(async move { this.empty_subtree(tenant, &tomb).await })
            .await
            .map_err(|e| {
                Error::shutting_down(format!(
                    "the folder deletion stopped: {e}; it resumes at the next start"
                ))
            })??;
        Ok(FolderDeletion {
            folders,
            media,
            blobs,
        })
    }

    /// Deletes a folder and everything in it, the media in the background:
    /// the subtree leaves the namespace at once, and a job queued in the
    /// same transaction deletes its media and folders (batch by batch, on
    /// any replica, resumed after a crash). Returns the folders that left
    /// and the job.
    pub async fn delete_folder_later(
        &self,
        tenant: TenantId,
        id: FolderId,
        force: bool,
        by: &str,
    ) -> Result<(u64, Job)> {
        let mut tx = self.inner.repo.begin().await?;
        let (_, folders) = tx.begin_folder_deletion(tenant, id, force).await?;
        let payload = serde_json::json!({ "folder_id": id.to_string() });
        let job = NewJob::new(tenant, DELETE_FOLDER, payload, by);
        let job = tx
            .insert_jobs(std::slice::from_ref(&job))
            .await?
            .pop()
            .ok_or_else(|| Error::Database(sea_orm::DbErr::RecordNotInserted))?;
        tx.commit().await?;
        self.folders_changed(tenant);
        self.job_wakeup().notify_one();
        Ok((folders, job))
    }

    /// Finishes the deletion of folder `id` (a job's work): its media,
    /// batch by batch, then its folders. Returns the media and blobs
    /// removed; nothing if it was finished already.
    pub async fn finish_folder_deletion(
        &self,
        tenant: TenantId,
        id: FolderId,
    ) -> Result<(u64, u64)> {
        self.empty_subtree(tenant, &FolderPath::tombstone(id)).await
    }

    /// Deletes a tombstoned subtree's media batch by batch, then its
    /// folders. Returns the media and blobs removed.
    pub(super) async fn empty_subtree(
        &self,
        tenant: TenantId,
        tomb: &FolderPath,
    ) -> Result<(u64, u64)> {
        let (mut media, mut blobs) = (0, 0);
        loop {
            let mut tx = self.inner.repo.begin().await?;
            let ids = tx.media_in_subtree(tenant, tomb, DELETE_BATCH).await?;
            if ids.is_empty() {
                tx.remove_folders(tenant, tomb).await?;
                tx.commit().await?;
                return Ok((media, blobs));
            }
            let removed = tx.delete_media(tenant, &ids, true).await?;
            tx.commit().await?;
            media += removed.deleted.len() as u64;
            blobs += self.release_deleted(tenant, &removed).await?;
        }
    }
}
