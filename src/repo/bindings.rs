//! Binding rows: which object of which module uses a media.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::OnConflict,
};

use super::{
    Repo,
    entity::{media, media_binding},
};
use crate::{
    domain::{Binding, BindingKey, MediaId, TenantId, now_micros},
    error::{Error, Resource, Result},
};

/// Which bindings a listing returns.
#[derive(Debug, Clone)]
pub enum BindingScope {
    /// Those of one media.
    Media(MediaId),
    /// Those from one module, optionally one object of it.
    Module {
        /// The module.
        module: String,
        /// The object, if given.
        object_id: Option<String>,
    },
}

impl Repo {
    /// Binds a media to an object; an existing binding is kept as is.
    pub async fn add_binding(&self, tenant: TenantId, key: &BindingKey) -> Result<Binding> {
        let exists = media::Entity::find_by_id(key.media.0)
            .filter(media::Column::TenantId.eq(tenant.0))
            .one(&self.write)
            .await?
            .is_some();
        if !exists {
            return Err(Error::not_found(Resource::Media, key.media.to_string()));
        }
        media_binding::Entity::insert(media_binding::ActiveModel {
            tenant_id: Set(tenant.0),
            media_id: Set(key.media.0),
            module: Set(key.module.clone()),
            object_id: Set(key.object_id.clone()),
            created_at: Set(now_micros()),
        })
        .on_conflict(
            OnConflict::columns([
                media_binding::Column::TenantId,
                media_binding::Column::MediaId,
                media_binding::Column::Module,
                media_binding::Column::ObjectId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .do_nothing()
        .exec(&self.write)
        .await?;
        let row = media_binding::Entity::find_by_id((
            tenant.0,
            key.media.0,
            key.module.clone(),
            key.object_id.clone(),
        ))
        .one(&self.write)
        .await?
        // A concurrent delete of the media took the binding with it.
        .ok_or_else(|| Error::not_found(Resource::Media, key.media.to_string()))?;
        Ok(to_binding(row))
    }

    /// Removes a binding; false if there was none.
    pub async fn remove_binding(&self, tenant: TenantId, key: &BindingKey) -> Result<bool> {
        let res = media_binding::Entity::delete_by_id((
            tenant.0,
            key.media.0,
            key.module.clone(),
            key.object_id.clone(),
        ))
        .exec(&self.write)
        .await?;
        Ok(res.rows_affected > 0)
    }

    /// A page of bindings in (module, object, media) order, after `after`.
    pub async fn list_bindings(
        &self,
        tenant: TenantId,
        scope: &BindingScope,
        after: Option<&BindingKey>,
        limit: u64,
    ) -> Result<Vec<Binding>> {
        use media_binding::Column as C;
        let mut q = media_binding::Entity::find().filter(C::TenantId.eq(tenant.0));
        q = match scope {
            BindingScope::Media(id) => q.filter(C::MediaId.eq(id.0)),
            BindingScope::Module { module, object_id } => {
                let q = q.filter(C::Module.eq(module.as_str()));
                match object_id {
                    Some(o) => q.filter(C::ObjectId.eq(o.as_str())),
                    None => q,
                }
            }
        };
        if let Some(k) = after {
            q = q.filter(
                Condition::any()
                    .add(C::Module.gt(k.module.as_str()))
                    .add(
                        Condition::all()
                            .add(C::Module.eq(k.module.as_str()))
                            .add(C::ObjectId.gt(k.object_id.as_str())),
                    )
                    .add(
                        Condition::all()
                            .add(C::Module.eq(k.module.as_str()))
                            .add(C::ObjectId.eq(k.object_id.as_str()))
                            .add(C::MediaId.gt(k.media.0)),
                    ),
            );
        }
        Ok(q.order_by_asc(C::Module)
            .order_by_asc(C::ObjectId)
            .order_by_asc(C::MediaId)
            .limit(limit)
            .all(&self.read)
            .await?
            .into_iter()
            .map(to_binding)
            .collect())
    }
}

fn to_binding(r: media_binding::Model) -> Binding {
    Binding {
        key: BindingKey {
            media: MediaId(r.media_id),
            module: r.module,
            object_id: r.object_id,
        },
        created_at: r.created_at,
    }
}
