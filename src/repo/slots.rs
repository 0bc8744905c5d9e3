//! Slots and codes: finding a media by the client's names, and moving a
//! slot to a new media in the transaction that inserts it.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr};

use super::{Repo, WriteTx, entity::media};
use crate::{
    domain::{MediaId, MediaRef, Slot, SlotPolicy, TenantId, now_micros},
    error::{Error, Resource, Result},
};

impl Repo {
    /// The id of the tenant's media named by `r`, if there is one.
    pub async fn media_id_of(&self, tenant: TenantId, r: &MediaRef) -> Result<Option<MediaId>> {
        let q = media::Entity::find()
            .select_only()
            .column(media::Column::Id)
            .filter(media::Column::TenantId.eq(tenant.0));
        let q = match r {
            MediaRef::Id(id) => return Ok(Some(*id)),
            MediaRef::Slot(slot) => q
                .filter(media::Column::SlotResource.eq(slot.resource.as_str()))
                .filter(media::Column::SlotKey.eq(slot.key.as_str())),
            MediaRef::Code(code) => q.filter(media::Column::Code.eq(code.as_str())),
        };
        Ok(q.into_tuple::<uuid::Uuid>()
            .one(&self.read)
            .await?
            .map(MediaId))
    }

    /// Media displaced from their slots and not yet deleted (a crash came
    /// between the displacement and the deletion), a page at a time.
    pub async fn replaced_media(&self, limit: u64) -> Result<Vec<(TenantId, MediaId)>> {
        Ok(media::Entity::find()
            .select_only()
            .column(media::Column::TenantId)
            .column(media::Column::Id)
            .filter(media::Column::ReplacedAt.is_not_null())
            .limit(limit)
            .into_tuple::<(uuid::Uuid, uuid::Uuid)>()
            .all(&self.read)
            .await?
            .into_iter()
            .map(|(t, m)| (TenantId(t), MediaId(m)))
            .collect())
    }

    /// Keeps a displaced media after all (it is bound): it stays, out of
    /// any slot.
    pub async fn keep_replaced(&self, tenant: TenantId, id: MediaId) -> Result<()> {
        media::Entity::update_many()
            .col_expr(media::Column::ReplacedAt, Expr::value(Option::<i64>::None))
            .filter(media::Column::TenantId.eq(tenant.0))
            .filter(media::Column::Id.eq(id.0))
            .exec(&self.write)
            .await?;
        Ok(())
    }
}

impl WriteTx {
    /// Empties `slot` for a new media, as `policy` says: the media there
    /// leaves it (marked for deletion unless kept), or, with
    /// [`SlotPolicy::Refuse`], ALREADY_EXISTS naming it. Returns the media
    /// marked for deletion.
    pub async fn take_slot(
        &mut self,
        tenant: TenantId,
        slot: &Slot,
        policy: SlotPolicy,
    ) -> Result<Vec<MediaId>> {
        let here = || {
            media::Entity::find()
                .select_only()
                .column(media::Column::Id)
                .filter(media::Column::TenantId.eq(tenant.0))
                .filter(media::Column::SlotResource.eq(slot.resource.as_str()))
                .filter(media::Column::SlotKey.eq(slot.key.as_str()))
        };
        let Some(holder) = here()
            .lock_exclusive()
            .into_tuple::<uuid::Uuid>()
            .one(&self.tx)
            .await?
            .map(MediaId)
        else {
            return Ok(Vec::new());
        };
        if policy == SlotPolicy::Refuse {
            return Err(slot_taken(slot, holder));
        }
        let now = now_micros();
        let replaced_at = (policy == SlotPolicy::Replace).then_some(now);
        media::Entity::update_many()
            .col_expr(
                media::Column::SlotResource,
                Expr::value(Option::<String>::None),
            )
            .col_expr(media::Column::SlotKey, Expr::value(Option::<String>::None))
            .col_expr(media::Column::ReplacedAt, Expr::value(replaced_at))
            .col_expr(media::Column::UpdatedAt, Expr::value(now))
            .filter(media::Column::TenantId.eq(tenant.0))
            .filter(media::Column::Id.eq(holder.0))
            .exec(&self.tx)
            .await?;
        Ok(replaced_at.map(|_| holder).into_iter().collect())
    }

    /// ALREADY_EXISTS if another media of the tenant has `code`.
    pub async fn check_code_free(&mut self, tenant: TenantId, code: &str) -> Result<()> {
        let holder = media::Entity::find()
            .select_only()
            .column(media::Column::Id)
            .filter(media::Column::TenantId.eq(tenant.0))
            .filter(media::Column::Code.eq(code))
            .into_tuple::<uuid::Uuid>()
            .one(&self.tx)
            .await?;
        match holder {
            Some(id) => Err(code_taken(code, MediaId(id))),
            None => Ok(()),
        }
    }
}

/// ALREADY_EXISTS: media `holder` sits in `slot`.
pub fn slot_taken(slot: &Slot, holder: MediaId) -> Error {
    Error::AlreadyExists {
        kind: Resource::SlotHolder,
        name: holder.to_string(),
        message: format!(
            "slot {slot} holds media {holder}; upload with the replace policy to take its place"
        ),
    }
}

/// ALREADY_EXISTS: media `holder` has `code`.
pub fn code_taken(code: &str, holder: MediaId) -> Error {
    Error::AlreadyExists {
        kind: Resource::CodeHolder,
        name: holder.to_string(),
        message: format!("media {holder} already has code {code:?}; codes are unique"),
    }
}
