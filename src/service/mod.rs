//! gRPC services: translate protobuf to domain calls and back, nothing more.

pub mod admin;
pub mod binding;
pub mod convert;
mod download;
pub mod folder;
pub mod media;
mod page_token;
mod query;
pub mod resumable;
mod upload;

use tonic::Request;

use crate::domain::TenantId;

/// The tenant a request acts for. Authentication (a later issue) puts the
/// caller's tenant in the request extensions; until then every request
/// belongs to the default tenant.
pub fn tenant_of<T>(req: &Request<T>) -> TenantId {
    req.extensions()
        .get::<TenantId>()
        .copied()
        .unwrap_or(TenantId::DEFAULT)
}
