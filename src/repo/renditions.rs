//! Cached renditions, each tenant's its own: found by (tenant, source,
//! request), listed by (tenant, source), recorded against a live source,
//! dropped with it, or when the tenant no longer holds the source.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement,
};

use super::{Repo, WriteTx, content_column, entity::rendition, parse_content, parse_hash, to_i64};
use crate::{
    domain::{ContentHash, Rendition, TenantId},
    error::Result,
};

impl Repo {
    /// The tenant's cached rendition of `source` for request `key`, if any.
    pub async fn find_rendition(
        &self,
        tenant: TenantId,
        source: &ContentHash,
        key: &str,
    ) -> Result<Option<Rendition>> {
        rendition::Entity::find_by_id((tenant.0, source.to_hex(), key.to_string()))
            .one(&self.read)
            .await?
            .map(to_domain)
            .transpose()
    }

    /// Every cached rendition the tenant has of `source`.
    pub async fn renditions_of(
        &self,
        tenant: TenantId,
        source: &ContentHash,
    ) -> Result<Vec<Rendition>> {
        rendition::Entity::find()
            .filter(rendition::Column::TenantId.eq(tenant.0))
            .filter(rendition::Column::SourceHash.eq(source.to_hex()))
            .all(&self.read)
            .await?
            .into_iter()
            .map(to_domain)
            .collect()
    }
}

impl WriteTx {
    /// Records a rendition, unless one for the same request exists or its
    /// source is no longer stored. Locks the source's blob row (with the
    /// rendition's, in hash order) first, so a
    /// concurrent release of the source either happens before (and the
    /// rendition is not recorded) or waits for this commit (and removes
    /// it). Returns whether it was recorded: the caller then claims the
    /// rendition's blob in this transaction.
    pub async fn insert_rendition(&mut self, tenant: TenantId, r: &Rendition) -> Result<bool> {
        // The source's row and the rendition's (if its bytes are stored
        // already), in hash order, as every writer locks blob rows.
        self.lock_blobs(&[r.source, r.blob], false).await?;
        let backend = self.tx.get_database_backend();
        let live = self
            .tx
            .query_one(Statement::from_sql_and_values(
                backend,
                "UPDATE blobs SET refcount = refcount WHERE hash = $1 AND refcount > 0 RETURNING hash",
                [r.source.to_hex().into()],
            ))
            .await?;
        if live.is_none() {
            return Ok(false);
        }
        let inserted = rendition::Entity::insert(rendition::ActiveModel {
            tenant_id: Set(tenant.0),
            source_hash: Set(r.source.to_hex()),
            params: Set(r.key.clone()),
            blob_hash: Set(r.blob.to_hex()),
            content_hash: Set(content_column(&r.blob, &r.content)),
            mime_type: Set(r.mime_type.clone()),
            width: Set(i32::try_from(r.width).unwrap_or(i32::MAX)),
            height: Set(i32::try_from(r.height).unwrap_or(i32::MAX)),
            size_bytes: Set(to_i64(r.size)),
            created_at: Set(r.created_at),
        })
        .on_conflict(
            sea_orm::sea_query::OnConflict::columns([
                rendition::Column::TenantId,
                rendition::Column::SourceHash,
                rendition::Column::Params,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&self.tx)
        .await?;
        Ok(inserted == 1)
    }

    /// Deletes the renditions of these (released) sources and drops their
    /// references on the rendition blobs. Returns those blobs: the caller
    /// releases the ones no longer referenced.
    pub async fn remove_renditions_of(
        &mut self,
        sources: &[ContentHash],
    ) -> Result<Vec<ContentHash>> {
        let mut blobs = self
            .hashes_returned(sources, |list| {
                format!("DELETE FROM renditions WHERE source_hash IN ({list}) RETURNING blob_hash")
            })
            .await?;
        self.drop_references(&mut blobs).await?;
        blobs.dedup();
        Ok(blobs)
    }

    /// Deletes the tenant's renditions of those `sources` it holds no
    /// media of any more (another tenant still does, or they would have
    /// gone with their bytes) and drops their references on the rendition
    /// blobs. Returns how many renditions went, and their blobs: the
    /// caller releases the ones no longer referenced.
    pub async fn remove_unheld_renditions(
        &mut self,
        tenant: TenantId,
        sources: &[ContentHash],
    ) -> Result<(u64, Vec<ContentHash>)> {
        let mut blobs = self
            .hashes_returned_after(&[tenant.0.into()], sources, |list| {
                format!(
                    "DELETE FROM renditions WHERE tenant_id = $1 AND source_hash IN ({list}) \
                     AND NOT EXISTS (SELECT 1 FROM media m WHERE m.tenant_id = $1 \
                       AND m.blob_hash = renditions.source_hash) \
                     RETURNING blob_hash"
                )
            })
            .await?;
        let removed = blobs.len() as u64;
        self.drop_references(&mut blobs).await?;
        blobs.dedup();
        Ok((removed, blobs))
    }

    /// Deletes one cached rendition (whose bytes went missing) and drops
    /// its reference on its blob. Returns the blob, if the row was there.
    pub async fn remove_rendition(
        &mut self,
        tenant: TenantId,
        source: &ContentHash,
        key: &str,
    ) -> Result<Option<ContentHash>> {
        let backend = self.tx.get_database_backend();
        let row = self
            .tx
            .query_one(Statement::from_sql_and_values(
                backend,
                "DELETE FROM renditions WHERE tenant_id = $1 AND source_hash = $2 AND params = $3 \
                 RETURNING blob_hash",
                [tenant.0.into(), source.to_hex().into(), key.into()],
            ))
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut blob = vec![parse_hash(&row.try_get_by_index::<String>(0)?)?];
        self.drop_references(&mut blob).await?;
        Ok(blob.pop())
    }

    /// Drops one reference per entry of `blobs` (sorted in place, so that
    /// equal blobs make one update, in hash order).
    async fn drop_references(&mut self, blobs: &mut [ContentHash]) -> Result<()> {
        let backend = self.tx.get_database_backend();
        blobs.sort_unstable_by_key(|h| h.0);
        let mut at = 0;
        while at < blobs.len() {
            let run = blobs[at..].iter().take_while(|h| **h == blobs[at]).count();
            self.tx
                .execute(Statement::from_sql_and_values(
                    backend,
                    "UPDATE blobs SET refcount = refcount - $1 WHERE hash = $2",
                    [to_i64(run as u64).into(), blobs[at].to_hex().into()],
                ))
                .await?;
            at += run;
        }
        Ok(())
    }
}

fn to_domain(r: rendition::Model) -> Result<Rendition> {
    let blob = parse_hash(&r.blob_hash)?;
    Ok(Rendition {
        source: parse_hash(&r.source_hash)?,
        key: r.params,
        blob,
        content: parse_content(blob, r.content_hash.as_deref())?,
        mime_type: r.mime_type,
        width: u32::try_from(r.width).unwrap_or(0),
        height: u32::try_from(r.height).unwrap_or(0),
        size: u64::try_from(r.size_bytes).unwrap_or(0),
        created_at: r.created_at,
    })
}
