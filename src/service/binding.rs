//! `mediastore.v1.BindingService`.

use tonic::{Request, Response, Status};

use super::{convert::binding_to_pb, page_token, query::page_size, tenant_of};
use crate::{
    domain::{BindingKey, MediaId, parse_module, parse_object_id},
    error::{Error, Reason},
    library::Library,
    pb::v1 as pb,
    repo::BindingScope,
};

/// The service implementation.
#[derive(Debug, Clone)]
pub struct BindingApi {
    library: Library,
}

impl BindingApi {
    /// A service over `library`.
    pub fn new(library: Library) -> Self {
        Self { library }
    }
}

fn key(media_id: &str, module: &str, object_id: &str) -> Result<BindingKey, Error> {
    Ok(BindingKey {
        media: MediaId::parse("media_id", media_id)?,
        module: parse_module("module", module)?,
        object_id: parse_object_id("object_id", object_id)?,
    })
}

#[tonic::async_trait]
impl pb::binding_service_server::BindingService for BindingApi {
    async fn add_binding(
        &self,
        request: Request<pb::AddBindingRequest>,
    ) -> Result<Response<pb::AddBindingResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.get_ref();
        let key = key(&r.media_id, &r.module, &r.object_id)?;
        let binding = self.library.bind(tenant, &key).await?;
        Ok(Response::new(pb::AddBindingResponse {
            binding: Some(binding_to_pb(binding)),
        }))
    }

    async fn remove_binding(
        &self,
        request: Request<pb::RemoveBindingRequest>,
    ) -> Result<Response<pb::RemoveBindingResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.get_ref();
        let key = key(&r.media_id, &r.module, &r.object_id)?;
        self.library.unbind(tenant, &key).await?;
        Ok(Response::new(pb::RemoveBindingResponse {}))
    }

    async fn list_bindings(
        &self,
        request: Request<pb::ListBindingsRequest>,
    ) -> Result<Response<pb::ListBindingsResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.get_ref();
        let limit = page_size("page_size", r.page_size)?;
        let scope = match (r.media_id.is_empty(), r.module.is_empty()) {
            (false, true) if r.object_id.is_empty() => {
                BindingScope::Media(MediaId::parse("media_id", &r.media_id)?)
            }
            (true, false) => BindingScope::Module {
                module: parse_module("module", &r.module)?,
                object_id: if r.object_id.is_empty() {
                    None
                } else {
                    Some(parse_object_id("object_id", &r.object_id)?)
                },
            },
            (true, true) => {
                return Err(Error::required(
                    "media_id",
                    "set media_id, or module (optionally with object_id)",
                )
                .into());
            }
            _ => {
                return Err(Error::bad(
                    Reason::FieldConflict,
                    "media_id",
                    "set media_id alone, or module (optionally with object_id)",
                )
                .into());
            }
        };
        let fingerprint = page_token::fingerprint(&format!("{scope:?}"));
        let after = page_token::decode_binding("page_token", &r.page_token, fingerprint)?;
        let mut items = self
            .library
            .bindings(tenant, &scope, after.as_ref(), limit + 1)
            .await?;
        let next_page_token = page_token::next_page(&mut items, limit, |b| {
            page_token::encode_binding(fingerprint, &b.key)
        });
        Ok(Response::new(pb::ListBindingsResponse {
            bindings: items.into_iter().map(binding_to_pb).collect(),
            next_page_token,
        }))
    }
}
