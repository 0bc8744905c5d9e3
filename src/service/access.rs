//! `mediastore.v1.AccessService`: tenants and API keys, for operators.

use tonic::{Request, Response, Status};

use super::{
    convert::timestamp,
    page_token, principal_of,
    query::{micros, page_size},
};
use crate::{
    domain::{
        ApiKey, ApiKeyId, KeySpec, Quota, Scopes, Tenant, TenantId, Usage, check_name, check_role,
    },
    library::Library,
    pb::v1 as pb,
};

/// The service implementation.
#[derive(Debug, Clone)]
pub struct AccessApi {
    library: Library,
}

impl AccessApi {
    /// A service over `library`.
    pub fn new(library: Library) -> Self {
        Self { library }
    }
}

/// The gRPC form of a tenant and what it holds.
pub fn tenant_to_pb(t: Tenant, usage: Usage) -> pb::Tenant {
    pb::Tenant {
        id: t.id.to_string(),
        name: t.name,
        create_time: Some(timestamp(t.created_at)),
        max_bytes: t.quota.max_bytes.unwrap_or(0),
        max_media_count: t.quota.max_media.unwrap_or(0),
        used_bytes: usage.bytes,
        media_count: usage.media,
    }
}

/// A quota as the API sends it: 0 for no limit.
fn quota(max_bytes: u64, max_media_count: u64) -> Quota {
    Quota {
        max_bytes: (max_bytes > 0).then_some(max_bytes),
        max_media: (max_media_count > 0).then_some(max_media_count),
    }
}

/// The gRPC form of a key (never its secret: the server does not have it).
pub fn key_to_pb(k: ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        id: k.id.to_string(),
        tenant_id: k.tenant.to_string(),
        name: k.name,
        role: k.role,
        scopes: k.scopes.iter().map(|s| s.as_str().to_string()).collect(),
        secret_prefix: k.shown_prefix,
        create_time: Some(timestamp(k.created_at)),
        expire_time: k.expires_at.map(timestamp),
        revoke_time: k.revoked_at.map(timestamp),
    }
}

#[tonic::async_trait]
impl pb::access_service_server::AccessService for AccessApi {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let req = request.get_ref();
        let name = check_name("name", &req.name)?;
        let tenant = self
            .library
            .create_tenant(&name, quota(req.max_bytes, req.max_media_count))
            .await?;
        tracing::info!(tenant = %tenant.id, name = %tenant.name, "tenant created");
        Ok(Response::new(pb::CreateTenantResponse {
            tenant: Some(tenant_to_pb(tenant, Usage::default())),
        }))
    }

    async fn set_tenant_quota(
        &self,
        request: Request<pb::SetTenantQuotaRequest>,
    ) -> Result<Response<pb::SetTenantQuotaResponse>, Status> {
        let req = request.get_ref();
        let id = TenantId::parse("tenant_id", &req.tenant_id)?;
        let tenant = self
            .library
            .set_quota(id, quota(req.max_bytes, req.max_media_count))
            .await?;
        tracing::info!(tenant = %id, quota = ?tenant.quota, "tenant quota set");
        let usage = self.library.usage(id).await?;
        Ok(Response::new(pb::SetTenantQuotaResponse {
            tenant: Some(tenant_to_pb(tenant, usage)),
        }))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let req = request.get_ref();
        let limit = page_size("page_size", req.page_size)?;
        let fingerprint = page_token::fingerprint("tenants");
        let after = page_token::decode_id("page_token", &req.page_token, fingerprint)?;
        let mut tenants = self
            .library
            .tenants_with_usage(after.map(TenantId), limit + 1)
            .await?;
        let next_page_token = page_token::next_page(&mut tenants, limit, |(t, _)| {
            page_token::encode_id(fingerprint, t.id.0)
        });
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: tenants
                .into_iter()
                .map(|(t, usage)| tenant_to_pb(t, usage))
                .collect(),
            next_page_token,
        }))
    }

    async fn delete_tenant(
        &self,
        request: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::DeleteTenantResponse>, Status> {
        let id = TenantId::parse("tenant_id", &request.get_ref().tenant_id)?;
        let keys = self.library.delete_tenant(id).await?;
        tracing::info!(tenant = %id, keys, "tenant deleted");
        Ok(Response::new(pb::DeleteTenantResponse {
            deleted_api_key_count: keys,
        }))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let caller = principal_of(&request)?.tenant;
        let req = request.get_ref();
        let tenant = if req.tenant_id.is_empty() {
            caller
        } else {
            TenantId::parse("tenant_id", &req.tenant_id)?
        };
        let spec = KeySpec {
            tenant,
            name: check_name("name", &req.name)?,
            role: check_role("role", &req.role)?,
            scopes: Scopes::parse("scopes", req.scopes.iter().map(String::as_str))?,
            expires_at: req
                .expire_time
                .as_ref()
                .map(|t| micros("expire_time", t))
                .transpose()?,
        };
        let (key, secret) = self.library.create_key(spec, None).await?;
        tracing::info!(key = %key.id, tenant = %key.tenant, name = %key.name, "API key created");
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: Some(key_to_pb(key)),
            secret: secret.secret,
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let req = request.get_ref();
        let tenant = if req.tenant_id.is_empty() {
            None
        } else {
            Some(TenantId::parse("tenant_id", &req.tenant_id)?)
        };
        let limit = page_size("page_size", req.page_size)?;
        let fingerprint = page_token::fingerprint(&format!("keys {tenant:?}"));
        let after = page_token::decode_id("page_token", &req.page_token, fingerprint)?;
        let mut keys = self
            .library
            .keys(tenant, after.map(ApiKeyId), limit + 1)
            .await?;
        let next_page_token = page_token::next_page(&mut keys, limit, |k| {
            page_token::encode_id(fingerprint, k.id.0)
        });
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: keys.into_iter().map(key_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let id = ApiKeyId::parse("api_key_id", &request.get_ref().api_key_id)?;
        let key = self.library.revoke_key(id).await?;
        tracing::info!(key = %key.id, name = %key.name, "API key revoked");
        Ok(Response::new(pb::RevokeApiKeyResponse {
            api_key: Some(key_to_pb(key)),
        }))
    }
}
