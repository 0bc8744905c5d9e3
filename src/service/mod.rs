//! gRPC services: translate protobuf to domain calls and back, nothing more.

pub mod access;
pub mod admin;
pub mod binding;
pub mod convert;
mod download;
pub mod folder;
pub mod jobs;
pub mod media;
mod page_token;
mod query;
pub mod resumable;
mod upload;

use tonic::{Request, Status};

use crate::{
    domain::{Principal, TenantId},
    error::{Error, Reason},
};

/// Who the request acts for, as the authentication layer
/// ([`crate::auth`]) decided before the handler ran.
pub fn principal_of<T>(req: &Request<T>) -> Result<&Principal, Status> {
    // Only a server built without the layer gets here without one; refuse
    // rather than guess.
    req.extensions().get::<Principal>().ok_or_else(|| {
        Error::Unauthenticated {
            reason: Reason::CredentialsMissing,
            message: "the call was not authenticated".to_string(),
        }
        .into()
    })
}

/// The tenant the request acts for.
pub fn tenant_of<T>(req: &Request<T>) -> Result<TenantId, Status> {
    principal_of(req).map(|p| p.tenant)
}

/// The tenant a read of media `id` acts in: the caller's, or, for a caller
/// without credentials, the owner of `id` if that media is public (else
/// NOT_FOUND, as for a missing one).
pub async fn reader_tenant<T>(
    library: &crate::library::Library,
    req: &Request<T>,
    id: crate::domain::MediaId,
) -> Result<TenantId, Status> {
    let principal = principal_of(req)?;
    if principal.public_only {
        Ok(library.public_owner(id).await?)
    } else {
        Ok(principal.tenant)
    }
}

/// Records the media id on the current RPC's span.
pub(crate) fn record_media_id(id: &crate::domain::MediaId) {
    tracing::Span::current().record("media_id", tracing::field::display(id));
}

/// A read request that names one media by `media_id`, `slot` or `code`.
pub trait NamesMedia {
    fn media_id(&self) -> &str;
    fn slot(&self) -> Option<&crate::pb::v1::MediaSlot>;
    fn code(&self) -> &str;
}

macro_rules! names_media {
    ($($t:ty),*) => {$(
        impl NamesMedia for $t {
            fn media_id(&self) -> &str {
                &self.media_id
            }
            fn slot(&self) -> Option<&crate::pb::v1::MediaSlot> {
                self.slot.as_ref()
            }
            fn code(&self) -> &str {
                &self.code
            }
        }
    )*};
}

names_media!(
    crate::pb::v1::ReadMediaRequest,
    crate::pb::v1::GetRenditionRequest,
    crate::pb::v1::GetMediaUrlRequest,
    crate::pb::v1::GetMediaRequest
);

/// The tenant and id of the media a read names: by `media_id`, or by
/// `slot` or `code` (exactly one). Slots and codes are a tenant's names:
/// a caller without credentials uses ids.
pub async fn reader_media<T: NamesMedia>(
    library: &crate::library::Library,
    req: &Request<T>,
) -> Result<(TenantId, crate::domain::MediaId), Status> {
    use crate::domain::{MediaId, MediaRef, parse_code};
    let r = req.get_ref();
    let (media_id, slot, code) = (r.media_id(), r.slot(), r.code());
    let named = usize::from(!media_id.is_empty())
        + usize::from(slot.is_some())
        + usize::from(!code.is_empty());
    if named > 1 {
        return Err(Error::bad(
            Reason::FieldConflict,
            "media_id",
            "name the media by one of media_id, slot and code",
        )
        .into());
    }
    let by = match (slot, code.is_empty()) {
        (Some(s), _) => MediaRef::Slot(convert::slot("slot", s)?),
        (None, false) => MediaRef::Code(parse_code("code", code)?),
        (None, true) => {
            let id = MediaId::parse("media_id", media_id)?;
            record_media_id(&id);
            return Ok((reader_tenant(library, req, id).await?, id));
        }
    };
    let principal = principal_of(req)?;
    if principal.public_only {
        return Err(Error::Unauthenticated {
            reason: Reason::CredentialsMissing,
            message: "slots and codes name media within a tenant: send a key, or name a public media by its id".to_string(),
        }
        .into());
    }
    let id = library.media_id_by(principal.tenant, &by).await?;
    record_media_id(&id);
    Ok((principal.tenant, id))
}
