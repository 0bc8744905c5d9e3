//! Tenant and API key rows.

use std::collections::HashMap;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait, TryInsertResult,
    sea_query::OnConflict,
};

use super::{
    Repo,
    entity::{api_key, folder, job, media, tenant, upload},
};
use crate::{
    domain::{
        ApiKey, ApiKeyId, KeyHash, KeySpec, Quota, Scopes, Tenant, TenantId, UploadState, Usage,
        now_micros,
    },
    error::{Error, Reason, Resource, Result},
};

/// Why a tenant could not be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantDeletion {
    /// It and its keys are gone; this many keys.
    Deleted(u64),
    /// It has no row.
    Missing,
    /// It holds media, folders or an active resumable upload.
    NotEmpty,
}

impl Repo {
    /// Creates a tenant and its root folder; `None` if the name is taken.
    pub async fn create_tenant(&self, name: &str, quota: Quota) -> Result<Option<Tenant>> {
        let id = TenantId::generate();
        let now = now_micros();
        let tx = self.write.begin().await?;
        let inserted = tenant::Entity::insert(tenant::ActiveModel {
            id: Set(id.0),
            name: Set(name.to_string()),
            created_at: Set(now),
            max_bytes: Set(stored_limit(quota.max_bytes)),
            max_media: Set(stored_limit(quota.max_media)),
        })
        .on_conflict(
            OnConflict::column(tenant::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(&tx)
        .await?;
        if matches!(inserted, TryInsertResult::Conflicted) {
            return Ok(None);
        }
        folder::Entity::insert(super::root_folder_row(id, now))
            .exec(&tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Tenant {
            id,
            name: name.to_string(),
            created_at: now,
            quota,
        }))
    }

    /// Sets a tenant's quota; `None` if it does not exist.
    pub async fn set_quota(&self, id: TenantId, quota: Quota) -> Result<Option<Tenant>> {
        tenant::Entity::update_many()
            .col_expr(
                tenant::Column::MaxBytes,
                sea_orm::sea_query::Expr::value(stored_limit(quota.max_bytes)),
            )
            .col_expr(
                tenant::Column::MaxMedia,
                sea_orm::sea_query::Expr::value(stored_limit(quota.max_media)),
            )
            .filter(tenant::Column::Id.eq(id.0))
            .exec(&self.write)
            .await?;
        Ok(tenant::Entity::find_by_id(id.0)
            .one(&self.write)
            .await?
            .map(to_tenant))
    }

    /// What a tenant holds, from its folders' counters (media in folders
    /// being deleted still count until they are gone).
    pub async fn usage(&self, id: TenantId) -> Result<Usage> {
        Ok(self.usages(&[id]).await?.remove(&id).unwrap_or_default())
    }

    /// What each of these tenants holds, in one statement (a page of
    /// tenants costs one query, not one each); a tenant absent from the
    /// map holds nothing.
    pub async fn usages(&self, ids: &[TenantId]) -> Result<HashMap<TenantId, Usage>> {
        let mut out = HashMap::with_capacity(ids.len());
        let backend = self.read.get_database_backend();
        for part in ids.chunks(super::INSERT_CHUNK) {
            let (list, values) = super::placeholders(1, part.iter().map(|t| t.0.into()));
            // PostgreSQL sums BIGINTs as NUMERIC: cast back on both engines.
            let rows = self
                .read
                .query_all(Statement::from_sql_and_values(
                    backend,
                    format!(
                        "SELECT tenant_id, CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT), \
                         CAST(COALESCE(SUM(media_count), 0) AS BIGINT) FROM folders \
                         WHERE tenant_id IN ({list}) GROUP BY tenant_id"
                    ),
                    values,
                ))
                .await?;
            for r in rows {
                let tenant: uuid::Uuid = r.try_get_by_index(0)?;
                let (bytes, media): (i64, i64) = (r.try_get_by_index(1)?, r.try_get_by_index(2)?);
                out.insert(
                    TenantId(tenant),
                    Usage {
                        bytes: u64::try_from(bytes).unwrap_or(0),
                        media: u64::try_from(media).unwrap_or(0),
                    },
                );
            }
        }
        Ok(out)
    }

    /// One tenant.
    pub async fn tenant(&self, id: TenantId) -> Result<Option<Tenant>> {
        Ok(tenant::Entity::find_by_id(id.0)
            .one(&self.read)
            .await?
            .map(to_tenant))
    }

    /// One tenant, by name.
    pub async fn tenant_named(&self, name: &str) -> Result<Option<Tenant>> {
        Ok(tenant::Entity::find()
            .filter(tenant::Column::Name.eq(name))
            .one(&self.read)
            .await?
            .map(to_tenant))
    }

    /// Tenants in id (creation) order after `after`.
    pub async fn tenants(&self, after: Option<TenantId>, limit: u64) -> Result<Vec<Tenant>> {
        let mut q = tenant::Entity::find()
            .order_by_asc(tenant::Column::Id)
            .limit(limit);
        if let Some(a) = after {
            q = q.filter(tenant::Column::Id.gt(a.0));
        }
        Ok(q.all(&self.read)
            .await?
            .into_iter()
            .map(to_tenant)
            .collect())
    }

    /// Deletes a tenant that holds nothing but its root folder, with its
    /// keys, in one transaction. The tenant row is locked first (the order
    /// every structural change takes), so a folder or upload cannot slip
    /// in between the check and the delete.
    pub async fn delete_tenant(&self, id: TenantId) -> Result<TenantDeletion> {
        let tx = self.write.begin().await?;
        let lock = if tx.get_database_backend() == DatabaseBackend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let found = tx
            .query_one(Statement::from_sql_and_values(
                tx.get_database_backend(),
                format!("SELECT id FROM tenants WHERE id = $1{lock}"),
                [id.0.into()],
            ))
            .await?;
        if found.is_none() {
            return Ok(TenantDeletion::Missing);
        }
        let folders = folder::Entity::find()
            .filter(folder::Column::TenantId.eq(id.0))
            .count(&tx)
            .await?;
        let media = media::Entity::find()
            .filter(media::Column::TenantId.eq(id.0))
            .count(&tx)
            .await?;
        let active_uploads = upload::Entity::find()
            .filter(upload::Column::TenantId.eq(id.0))
            .filter(upload::Column::State.eq(UploadState::Active as i16))
            .count(&tx)
            .await?;
        if folders > 1 || media > 0 || active_uploads > 0 {
            return Ok(TenantDeletion::NotEmpty);
        }
        let keys = api_key::Entity::delete_many()
            .filter(api_key::Column::TenantId.eq(id.0))
            .exec(&tx)
            .await?
            .rows_affected;
        // Ended upload sessions (their files, if any, go with the next
        // garbage collection).
        upload::Entity::delete_many()
            .filter(upload::Column::TenantId.eq(id.0))
            .exec(&tx)
            .await?;
        // Its jobs: with no media and no folders left, none has work.
        job::Entity::delete_many()
            .filter(job::Column::TenantId.eq(id.0))
            .exec(&tx)
            .await?;
        folder::Entity::delete_many()
            .filter(folder::Column::TenantId.eq(id.0))
            .exec(&tx)
            .await?;
        tenant::Entity::delete_by_id(id.0).exec(&tx).await?;
        tx.commit().await?;
        Ok(TenantDeletion::Deleted(keys))
    }

    /// Stores a new key; `None` if the tenant already has a key of that
    /// name.
    pub async fn insert_key(
        &self,
        spec: &KeySpec,
        hash: KeyHash,
        shown_prefix: &str,
    ) -> Result<Option<ApiKey>> {
        if self.tenant(spec.tenant).await?.is_none() {
            return Err(Error::not_found(Resource::Tenant, spec.tenant.to_string()));
        }
        let row = api_key::Model {
            id: ApiKeyId::new().0,
            tenant_id: spec.tenant.0,
            name: spec.name.clone(),
            role: spec.role.clone(),
            scopes: spec.scopes.to_text(),
            secret_hash: hash.to_hex(),
            shown_prefix: shown_prefix.to_string(),
            created_at: now_micros(),
            expires_at: spec.expires_at,
            revoked_at: None,
        };
        let inserted = api_key::Entity::insert(api_key::ActiveModel::from(row.clone()))
            .on_conflict(
                OnConflict::columns([api_key::Column::TenantId, api_key::Column::Name])
                    .do_nothing()
                    .to_owned(),
            )
            .do_nothing()
            .exec(&self.write)
            .await;
        match inserted {
            Ok(TryInsertResult::Inserted(_)) => Ok(Some(to_key(row)?)),
            Ok(_) => Ok(None),
            // The tenant went away between the check and the insert.
            Err(e) if is_foreign_key_violation(&e) => {
                Err(Error::not_found(Resource::Tenant, spec.tenant.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether any key exists (the bootstrap key is made only when none
    /// does).
    pub async fn any_key(&self) -> Result<bool> {
        Ok(api_key::Entity::find().one(&self.read).await?.is_some())
    }

    /// The key with this secret's hash, revoked and expired ones included.
    pub async fn key_by_hash(&self, hash: KeyHash) -> Result<Option<ApiKey>> {
        api_key::Entity::find()
            .filter(api_key::Column::SecretHash.eq(hash.to_hex()))
            .one(&self.read)
            .await?
            .map(to_key)
            .transpose()
    }

    /// Keys in id (creation) order after `after`, of one tenant or all.
    pub async fn keys(
        &self,
        tenant: Option<TenantId>,
        after: Option<ApiKeyId>,
        limit: u64,
    ) -> Result<Vec<ApiKey>> {
        let mut q = api_key::Entity::find()
            .order_by_asc(api_key::Column::Id)
            .limit(limit);
        if let Some(t) = tenant {
            q = q.filter(api_key::Column::TenantId.eq(t.0));
        }
        if let Some(a) = after {
            q = q.filter(api_key::Column::Id.gt(a.0));
        }
        q.all(&self.read).await?.into_iter().map(to_key).collect()
    }

    /// Revokes a key (keeping the first revocation's time) and returns it.
    pub async fn revoke_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>> {
        api_key::Entity::update_many()
            .col_expr(
                api_key::Column::RevokedAt,
                sea_orm::sea_query::Expr::value(now_micros()),
            )
            .filter(api_key::Column::Id.eq(id.0))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&self.write)
            .await?;
        api_key::Entity::find_by_id(id.0)
            .one(&self.write)
            .await?
            .map(to_key)
            .transpose()
    }
}

fn to_tenant(t: tenant::Model) -> Tenant {
    let limit = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    Tenant {
        id: TenantId(t.id),
        name: t.name,
        created_at: t.created_at,
        quota: Quota {
            max_bytes: limit(t.max_bytes),
            max_media: limit(t.max_media),
        },
    }
}

fn stored_limit(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

fn to_key(k: api_key::Model) -> Result<ApiKey> {
    let scopes = Scopes::from_text(&k.scopes).ok_or_else(|| {
        Error::data_loss(
            Reason::RecordCorrupt,
            format!("API key {} names an unknown scope: {:?}", k.id, k.scopes),
        )
    })?;
    Ok(ApiKey {
        id: ApiKeyId(k.id),
        tenant: TenantId(k.tenant_id),
        name: k.name,
        role: k.role,
        scopes,
        shown_prefix: k.shown_prefix,
        created_at: k.created_at,
        expires_at: k.expires_at,
        revoked_at: k.revoked_at,
    })
}

/// Whether a statement failed on a foreign key (SQLite's and PostgreSQL's
/// words for it).
fn is_foreign_key_violation(e: &sea_orm::DbErr) -> bool {
    let text = e.to_string();
    text.contains("FOREIGN KEY constraint failed")
        || text.contains("violates foreign key constraint")
}
