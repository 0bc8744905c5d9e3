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
