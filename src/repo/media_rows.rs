//! Media rows: batch reads, deletes, moves and metadata edits.

use std::collections::{BTreeMap, HashMap};

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter,
    QuerySelect, Statement,
};

use super::{
    INSERT_CHUNK, Repo, WriteTx,
    entity::{blob, media, media_binding, media_tag},
    folders::FolderCounts,
    parse_hash, placeholders, set_analysis, tag_rows, to_domain, to_i64,
};
use crate::{
    domain::{
        ContentHash, FolderId, Media, MediaId, MediaPatch, TenantId, missing_ids, now_micros,
    },
    error::{Error, Reason, Resource, Result},
};

/// What a batch delete removed.
#[derive(Debug, Default)]
pub struct Removed {
    /// Media deleted.
    pub deleted: Vec<MediaId>,
    /// Requested ids the tenant has no media for (or that a concurrent
    /// delete took first).
    pub not_found: Vec<MediaId>,
    /// Blobs whose last reference went: the caller releases them after
    /// committing.
    pub unreferenced: Vec<ContentHash>,
    /// The blobs of the deleted media that no other media of the tenant
    /// uses: what the tenant no longer references. Whether other tenants
    /// still do is not the tenant's to know, so this, not `unreferenced`,
    /// is what a delete reports; the caller also drops the tenant's
    /// renditions of these.
    pub released: Vec<ContentHash>,
}

impl Repo {
    /// The tenant's media among `ids`, in the order of `ids`; missing ids
    /// are skipped.
    pub async fn get_media_many(&self, tenant: TenantId, ids: &[MediaId]) -> Result<Vec<Media>> {
        let mut rows = Vec::with_capacity(ids.len());
        for part in ids.chunks(INSERT_CHUNK) {
            rows.extend(
                media::Entity::find()
                    .filter(media::Column::TenantId.eq(tenant.0))
                    .filter(media::Column::Id.is_in(part.iter().map(|id| id.0)))
                    .all(&self.read)
                    .await?,
            );
        }
        let mut by_id: HashMap<uuid::Uuid, media::Model> =
            rows.into_iter().map(|r| (r.id, r)).collect();
        let ordered: Vec<media::Model> = ids.iter().filter_map(|id| by_id.remove(&id.0)).collect();
        self.with_md5(ordered).await
    }

    /// Converts rows to media, with the MD5s recorded on their blobs.
    pub(super) async fn with_md5(&self, rows: Vec<media::Model>) -> Result<Vec<Media>> {
        let mut hashes: Vec<String> = rows.iter().map(|r| r.blob_hash.clone()).collect();
        hashes.sort_unstable();
        hashes.dedup();
        let mut md5s: HashMap<String, String> = HashMap::new();
        for part in hashes.chunks(INSERT_CHUNK) {
            md5s.extend(
                blob::Entity::find()
                    .filter(blob::Column::Hash.is_in(part.iter().cloned()))
                    .all(&self.read)
                    .await?
                    .into_iter()
                    .filter_map(|b| b.md5.map(|m| (b.hash, m))),
            );
        }
        rows.into_iter()
            .map(|r| {
                let md5 = md5s.get(&r.blob_hash).cloned();
                to_domain(r, md5)
            })
            .collect()
    }
}

impl WriteTx {
    /// Up to `limit` bindings of these media, to name in an error.
    pub async fn bindings_of(
        &mut self,
        tenant: TenantId,
        ids: &[MediaId],
        limit: u64,
    ) -> Result<Vec<media_binding::Model>> {
        let mut found = Vec::new();
        for part in ids.chunks(INSERT_CHUNK) {
            found.extend(
                media_binding::Entity::find()
                    .filter(media_binding::Column::TenantId.eq(tenant.0))
                    .filter(media_binding::Column::MediaId.is_in(part.iter().map(|id| id.0)))
                    .limit(limit)
                    .all(&self.tx)
                    .await?,
            );
            if found.len() as u64 >= limit {
                break;
            }
        }
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(found)
    }

    /// Deletes media and drops their blob references and folder counts.
    /// Unless `force`, fails with FAILED_PRECONDITION, deleting nothing, if
    /// any of them is bound.
    pub async fn delete_media(
        &mut self,
        tenant: TenantId,
        ids: &[MediaId],
        force: bool,
    ) -> Result<Removed> {
        if !force {
            let bound = self.bindings_of(tenant, ids, 10).await?;
            if !bound.is_empty() {
                return Err(bound_error(&bound));
            }
        }
        let backend = self.tx.get_database_backend();
        for part in ids.chunks(INSERT_CHUNK) {
            let uuids = || part.iter().map(|id| id.0);
            if force {
                media_binding::Entity::delete_many()
                    .filter(media_binding::Column::TenantId.eq(tenant.0))
                    .filter(media_binding::Column::MediaId.is_in(uuids()))
                    .exec(&self.tx)
                    .await?;
            }
            media_tag::Entity::delete_many()
                .filter(media_tag::Column::TenantId.eq(tenant.0))
                .filter(media_tag::Column::MediaId.is_in(uuids()))
                .exec(&self.tx)
                .await?;
        }
        // RETURNING: only rows this transaction really deleted count, so a
        // concurrent delete of the same media never drops a blob reference
        // twice.
        let rows = self
            .by_tenant_and_ids(tenant, ids, |list| {
                format!(
                    "DELETE FROM media WHERE tenant_id = $1 AND id IN ({list}) \
                     RETURNING id, folder_id, blob_hash, size_bytes"
                )
            })
            .await?;
        let mut gone = Vec::with_capacity(rows.len());
        for row in rows {
            gone.push((
                MediaId(row.try_get_by_index(0)?),
                FolderId(row.try_get_by_index(1)?),
                row.try_get_by_index::<String>(2)?,
                row.try_get_by_index::<i64>(3)?,
            ));
        }

        let mut counts = FolderCounts::default();
        let mut blobs: BTreeMap<String, i64> = BTreeMap::new();
        for (_, folder, hash, size) in &gone {
            counts.add(tenant, *folder, -1, -size);
            *blobs.entry(hash.clone()).or_default() += 1;
        }
        let mut unreferenced = Vec::new();
        let mut sources = Vec::with_capacity(blobs.len());
        // Blobs first, in hash order, then folders: the order an upload's
        // commit locks them in, so the two never deadlock.
        for (hash, n) in blobs {
            sources.push(parse_hash(&hash)?);
            let rows = self
                .tx
                .query_all(Statement::from_sql_and_values(
                    backend,
                    "UPDATE blobs SET refcount = refcount - $1 WHERE hash = $2 RETURNING refcount",
                    [n.into(), hash.clone().into()],
                ))
                .await?;
            let left = match rows.first() {
                Some(row) => row.try_get_by_index::<i64>(0)?,
                None => 0,
            };
            if left <= 0 {
                unreferenced.push(parse_hash(&hash)?);
            }
        }
        self.apply_counts(counts).await?;
        let kept = self.tenant_holds(tenant, &sources).await?;
        let released = sources.into_iter().filter(|h| !kept.contains(h)).collect();
        let deleted: Vec<MediaId> = gone.iter().map(|g| g.0).collect();
        let not_found = missing_ids(ids, deleted.iter().copied());
        Ok(Removed {
            deleted,
            not_found,
            unreferenced,
            released,
        })
    }

    /// Which of `hashes` media of `tenant` use. Answered from the
    /// `(blob_hash, tenant_id)` index, so its cost depends on the tenant's
    /// own rows only, never on how many other tenants share a blob.
    pub async fn tenant_holds(
        &mut self,
        tenant: TenantId,
        hashes: &[ContentHash],
    ) -> Result<std::collections::HashSet<ContentHash>> {
        let held = self
            .hashes_returned_after(&[tenant.0.into()], hashes, |list| {
                format!(
                    "SELECT DISTINCT blob_hash FROM media \
                     WHERE tenant_id = $1 AND blob_hash IN ({list})"
                )
            })
            .await?;
        Ok(held.into_iter().collect())
    }

    /// Moves media to a live folder. Returns how many were moved and the
    /// ids the tenant has no media for.
    pub async fn move_media(
        &mut self,
        tenant: TenantId,
        ids: &[MediaId],
        dest: FolderId,
    ) -> Result<(u64, Vec<MediaId>)> {
        // The destination must be live even if nothing needs to move.
        self.folder(tenant, dest).await?;
        let backend = self.tx.get_database_backend();
        let lock = if backend == DatabaseBackend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let rows = self
            .by_tenant_and_ids(tenant, ids, |list| {
                format!(
                    "SELECT id, folder_id, size_bytes FROM media \
                     WHERE tenant_id = $1 AND id IN ({list}){lock}"
                )
            })
            .await?;
        let mut found = Vec::with_capacity(rows.len());
        for row in rows {
            found.push((
                MediaId(row.try_get_by_index(0)?),
                FolderId(row.try_get_by_index(1)?),
                row.try_get_by_index::<i64>(2)?,
            ));
        }
        let not_found = missing_ids(ids, found.iter().map(|f| f.0));
        let moving: Vec<&(MediaId, FolderId, i64)> =
            found.iter().filter(|(_, from, _)| *from != dest).collect();
        let mut counts = FolderCounts::default();
        for (_, from, size) in &moving {
            counts.add(tenant, *from, -1, -size);
            counts.add(tenant, dest, 1, *size);
        }
        self.apply_counts(counts).await?;
        let now = now_micros();
        for part in moving.chunks(INSERT_CHUNK) {
            media::Entity::update_many()
                .col_expr(media::Column::FolderId, dest.0.into())
                .col_expr(media::Column::UpdatedAt, now.into())
                .filter(media::Column::TenantId.eq(tenant.0))
                .filter(media::Column::Id.is_in(part.iter().map(|m| m.0.0)))
                .exec(&self.tx)
                .await?;
        }
        Ok((found.len() as u64, not_found))
    }

    /// Applies a patch to one media; NOT_FOUND if the tenant has none.
    pub async fn update_media(
        &mut self,
        tenant: TenantId,
        id: MediaId,
        patch: MediaPatch,
    ) -> Result<()> {
        let Some(row) = media::Entity::find_by_id(id.0)
            .filter(media::Column::TenantId.eq(tenant.0))
            .lock_exclusive()
            .one(&self.tx)
            .await?
        else {
            return Err(Error::not_found(Resource::Media, id.to_string()));
        };
        let mut am = media::ActiveModel {
            id: Set(row.id),
            updated_at: Set(now_micros()),
            updated_by: Set(patch.updated_by),
            ..Default::default()
        };
        if let Some(title) = patch.title {
            am.title = Set(title);
        }
        if let Some(author) = patch.author {
            am.author = Set(author);
        }
        if let Some(copyright) = patch.copyright {
            am.copyright = Set(copyright);
        }
        if let Some(metadata) = patch.metadata {
            am.metadata = Set(metadata);
        }
        if let Some(public) = patch.public {
            am.public = Set(public);
        }
        if let Some(project) = patch.project_id {
            am.project_id = Set(project);
        }
        if let Some(tags) = patch.tags {
            media_tag::Entity::delete_many()
                .filter(media_tag::Column::TenantId.eq(tenant.0))
                .filter(media_tag::Column::MediaId.eq(id.0))
                .exec(&self.tx)
                .await?;
            if !tags.is_empty() {
                media_tag::Entity::insert_many(tag_rows(tenant, id, row.created_at, &tags))
                    .exec_without_returning(&self.tx)
                    .await?;
            }
            am.tags = Set(serde_json::Value::from(tags));
        }
        media::Entity::update(am).exec(&self.tx).await?;
        Ok(())
    }

    /// Runs `sql(list)` for the ids in chunks, `$1` being the tenant and
    /// `list` the ids' placeholders, and returns every row.
    async fn by_tenant_and_ids(
        &mut self,
        tenant: TenantId,
        ids: &[MediaId],
        sql: impl Fn(&str) -> String,
    ) -> Result<Vec<sea_orm::QueryResult>> {
        let backend = self.tx.get_database_backend();
        let mut out = Vec::with_capacity(ids.len());
        for part in ids.chunks(INSERT_CHUNK) {
            let (list, mut values) = placeholders(2, part.iter().map(|id| id.0.into()));
            values.insert(0, tenant.0.into());
            out.extend(
                self.tx
                    .query_all(Statement::from_sql_and_values(backend, sql(&list), values))
                    .await?,
            );
        }
        Ok(out)
    }

    /// Up to `limit` media of a tombstoned subtree, for a delete batch.
    pub async fn media_in_subtree(
        &mut self,
        tenant: TenantId,
        tomb: &crate::domain::FolderPath,
        limit: u64,
    ) -> Result<Vec<MediaId>> {
        let (low, high) = tomb.subtree_range();
        let backend = self.tx.get_database_backend();
        let rows = self
            .tx
            .query_all(Statement::from_sql_and_values(
                backend,
                "SELECT m.id FROM folders f JOIN media m ON m.folder_id = f.id AND m.tenant_id = $1 \
                 WHERE f.tenant_id = $1 AND f.path >= $2 AND f.path < $3 LIMIT $4",
                [tenant.0.into(), low.into(), high.into(), to_i64(limit).into()],
            ))
            .await?;
        rows.iter()
            .map(|r| Ok(MediaId(r.try_get_by_index(0)?)))
            .collect()
    }
}

/// FAILED_PRECONDITION naming (some of) the bindings that keep media.
pub fn bound_error(bound: &[media_binding::Model]) -> Error {
    let names: Vec<String> = bound
        .iter()
        .map(|b| format!("media {} by {}/{}", b.media_id, b.module, b.object_id))
        .collect();
    Error::precondition(
        Reason::MediaBound,
        format!(
            "still in use: {}{}; remove the bindings first, or pass force to delete anyway",
            names.join(", "),
            if bound.len() >= 10 { ", ..." } else { "" }
        ),
    )
}

impl Repo {
    /// Replaces a media's analysed fields (dimensions, durations, codecs,
    /// EXIF, place and date taken, facts) with a new analysis of its
    /// bytes. Returns whether the media still existed.
    pub async fn set_media_analysis(
        &self,
        tenant: TenantId,
        id: MediaId,
        a: &crate::domain::Analysis,
    ) -> Result<bool> {
        let mut am = media::ActiveModel {
            updated_at: Set(now_micros()),
            ..Default::default()
        };
        set_analysis(&mut am, a);
        let done = media::Entity::update_many()
            .set(am)
            .filter(media::Column::TenantId.eq(tenant.0))
            .filter(media::Column::Id.eq(id.0))
            .exec(&self.write)
            .await?;
        Ok(done.rows_affected > 0)
    }
}
