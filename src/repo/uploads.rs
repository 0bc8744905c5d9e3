//! Rows of resumable uploads, and the lease that lets one stream at a time
//! write to an upload, across processes.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QuerySelect, sea_query::Expr,
};

use super::{Repo, WriteTx, entity::upload};
use crate::{
    domain::{MediaId, TenantId, UploadId, UploadSession, UploadState, now_micros},
    error::{Error, Reason, Result},
};

impl Repo {
    /// Records a new upload.
    pub async fn insert_upload(&self, u: &UploadSession) -> Result<()> {
        let spec = serde_json::to_string(&u.spec)
            .map_err(|e| Error::io("encoding an upload header", std::io::Error::other(e)))?;
        upload::Entity::insert(upload::ActiveModel {
            id: Set(u.id.0),
            tenant_id: Set(u.tenant.0),
            spec: Set(spec),
            declared_size: Set(u.spec.declared_size.map(to_i64)),
            committed_size: Set(to_i64(u.committed)),
            state: Set(u.state as i16),
            media_id: Set(u.media.map(|m| m.0)),
            expires_at: Set(u.expires_at),
            writer_id: Set(None),
            writer_until: Set(None),
            created_at: Set(u.created_at),
            updated_at: Set(u.updated_at),
        })
        .exec(&self.write)
        .await?;
        Ok(())
    }

    /// One upload of the tenant.
    pub async fn get_upload(
        &self,
        tenant: TenantId,
        id: UploadId,
    ) -> Result<Option<UploadSession>> {
        upload::Entity::find_by_id(id.0)
            .filter(upload::Column::TenantId.eq(tenant.0))
            .one(&self.read)
            .await?
            .map(session)
            .transpose()
    }

    /// Makes `writer` the one stream allowed to write to an active,
    /// unexpired upload until `until` (µs), unless another holds it.
    /// Returns whether it does now.
    pub async fn claim_upload(
        &self,
        tenant: TenantId,
        id: UploadId,
        writer: uuid::Uuid,
        until: i64,
    ) -> Result<bool> {
        let now = now_micros();
        let done = upload::Entity::update_many()
            .col_expr(upload::Column::WriterId, Expr::value(writer))
            .col_expr(upload::Column::WriterUntil, Expr::value(until))
            .filter(upload::Column::Id.eq(id.0))
            .filter(upload::Column::TenantId.eq(tenant.0))
            .filter(upload::Column::State.eq(UploadState::Active as i16))
            .filter(upload::Column::ExpiresAt.gt(now))
            .filter(
                Condition::any()
                    .add(upload::Column::WriterId.is_null())
                    .add(upload::Column::WriterUntil.lt(now)),
            )
            .exec(&self.write)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Records that `committed` bytes are durable, and extends `writer`'s
    /// hold to `until`. Returns false if `writer` no longer holds the
    /// upload (its hold lapsed and another stream took it, or it ended).
    pub async fn commit_upload_bytes(
        &self,
        id: UploadId,
        writer: uuid::Uuid,
        committed: u64,
        until: i64,
    ) -> Result<bool> {
        let done = upload::Entity::update_many()
            .col_expr(
                upload::Column::CommittedSize,
                Expr::value(to_i64(committed)),
            )
            .col_expr(upload::Column::WriterUntil, Expr::value(until))
            .col_expr(upload::Column::UpdatedAt, Expr::value(now_micros()))
            .filter(upload::Column::Id.eq(id.0))
            .filter(upload::Column::WriterId.eq(writer))
            .filter(upload::Column::State.eq(UploadState::Active as i16))
            .exec(&self.write)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Lets go of `writer`'s hold, if it still has it.
    pub async fn release_upload(&self, id: UploadId, writer: uuid::Uuid) -> Result<()> {
        release()
            .filter(upload::Column::Id.eq(id.0))
            .filter(upload::Column::WriterId.eq(writer))
            .exec(&self.write)
            .await?;
        Ok(())
    }

    /// Moves an active upload to `state` (cancelled or expired). Returns
    /// whether it was active.
    pub async fn end_upload(&self, id: UploadId, state: UploadState) -> Result<bool> {
        let done = leave_active(id, state).exec(&self.write).await?;
        Ok(done.rows_affected == 1)
    }

    /// Active uploads whose expiry passed before `now`.
    pub async fn expired_uploads(&self, now: i64, limit: u64) -> Result<Vec<UploadId>> {
        Ok(upload::Entity::find()
            .select_only()
            .column(upload::Column::Id)
            .filter(upload::Column::State.eq(UploadState::Active as i16))
            .filter(upload::Column::ExpiresAt.lte(now))
            .limit(limit)
            .into_tuple::<uuid::Uuid>()
            .all(&self.read)
            .await?
            .into_iter()
            .map(UploadId)
            .collect())
    }

    /// Forgets uploads that ended (finished, cancelled, expired) before
    /// `before`. Returns how many.
    pub async fn forget_uploads(&self, before: i64) -> Result<u64> {
        Ok(upload::Entity::delete_many()
            .filter(upload::Column::State.ne(UploadState::Active as i16))
            .filter(upload::Column::UpdatedAt.lt(before))
            .exec(&self.write)
            .await?
            .rows_affected)
    }

    /// Whether an upload with this id is active (its file must be kept).
    pub async fn upload_active(&self, id: UploadId) -> Result<bool> {
        Ok(upload::Entity::find_by_id(id.0)
            .select_only()
            .column(upload::Column::State)
            .into_tuple::<i16>()
            .one(&self.read)
            .await?
            .is_some_and(|s| s == UploadState::Active as i16))
    }

    /// Drops every hold on uploads: at the start of the only process that
    /// can write to this database (SQLite), none is live.
    pub async fn release_all_uploads(&self) -> Result<()> {
        if self.write.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
            release().exec(&self.write).await?;
        }
        Ok(())
    }
}

impl WriteTx {
    /// Marks an active upload finished as `media`, in the transaction that
    /// inserts the media, so a finish happens once however often it is
    /// retried.
    pub async fn finish_upload(&mut self, id: UploadId, media: MediaId) -> Result<()> {
        let done = leave_active(id, UploadState::Finished)
            .col_expr(upload::Column::MediaId, Expr::value(media.0))
            .exec(&self.tx)
            .await?;
        if done.rows_affected == 1 {
            Ok(())
        } else {
            Err(Error::precondition(
                Reason::UploadNotActive,
                format!(
                    "upload {id} was cancelled or expired while it finished; start a new upload"
                ),
            ))
        }
    }
}

/// Clears the hold of the uploads the caller filters.
fn release() -> sea_orm::UpdateMany<upload::Entity> {
    upload::Entity::update_many()
        .col_expr(
            upload::Column::WriterId,
            Expr::value(Option::<uuid::Uuid>::None),
        )
        .col_expr(
            upload::Column::WriterUntil,
            Expr::value(Option::<i64>::None),
        )
}

/// Moves an upload from active to `state`, letting go of any hold.
fn leave_active(id: UploadId, state: UploadState) -> sea_orm::UpdateMany<upload::Entity> {
    release()
        .col_expr(upload::Column::State, Expr::value(state as i16))
        .col_expr(upload::Column::UpdatedAt, Expr::value(now_micros()))
        .filter(upload::Column::Id.eq(id.0))
        .filter(upload::Column::State.eq(UploadState::Active as i16))
}

fn session(m: upload::Model) -> Result<UploadSession> {
    let spec = serde_json::from_str(&m.spec)
        .map_err(|e| Error::io("decoding a stored upload header", std::io::Error::other(e)))?;
    let state = UploadState::from_i16(m.state).ok_or_else(|| {
        Error::io(
            "reading an upload",
            std::io::Error::other(format!("unknown upload state {}", m.state)),
        )
    })?;
    Ok(UploadSession {
        id: UploadId(m.id),
        tenant: TenantId(m.tenant_id),
        spec,
        committed: u64::try_from(m.committed_size).unwrap_or(0),
        state,
        media: m.media_id.map(MediaId),
        expires_at: m.expires_at,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
